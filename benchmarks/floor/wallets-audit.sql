-- The floor of the wallets audit: its five findings, one query each.
SELECT count(*) AS wallets_off
FROM user_wallets w
LEFT JOIN (SELECT wallet_id, sum(coins_change) AS coins,
                  sum(CASE WHEN tx_type IN ('earn', 'withdraw') THEN money_change ELSE 0 END)
                    AS money
           FROM user_transactions GROUP BY wallet_id) t ON t.wallet_id = w.wallet_id
WHERE w.balance_coins <> coalesce(t.coins, 0) OR w.withdrawable_money <> coalesce(t.money, 0);
SELECT count(*) AS changed_after_settlement
FROM ops_settlements s JOIN user_calls c USING (call_id)
WHERE c.status IS DISTINCT FROM 'dropped' OR c.end_time IS DISTINCT FROM s.end_time
   OR c.coins_spent IS DISTINCT FROM s.coins_spent
   OR c.listener_money_earned IS DISTINCT FROM s.listener_money_earned;
SELECT count(*) AS ended_again_after_half_end
FROM ops_half_ended_calls o JOIN user_calls c USING (call_id)
WHERE (c.status IS DISTINCT FROM 'ongoing' OR c.end_time IS DISTINCT FROM o.end_time
       OR coalesce(c.coins_spent, 0) <> o.coins_spent
       OR c.listener_money_earned IS DISTINCT FROM o.listener_money_earned)
  AND NOT EXISTS (SELECT FROM ops_corrections k WHERE k.call_id = o.call_id
                  AND k.finding IN ('ended_again_after_half_end', 'half_ended'));
SELECT count(*) AS half_ended FROM user_calls c
WHERE c.status = 'ongoing' AND c.end_time IS NOT NULL
  AND NOT EXISTS (SELECT FROM ops_settlements s WHERE s.call_id = c.call_id);
SELECT count(*) AS charge_drift
FROM (SELECT c.coins_spent,
             CASE c.call_type WHEN 'audio' THEN 10 ELSE 60 END AS rate,
             floor(extract(epoch FROM :'now'::timestamptz - c.start_time))::bigint AS e
      FROM user_calls c
      WHERE c.status = 'ongoing' AND c.end_time IS NULL
        AND NOT EXISTS (SELECT FROM ops_settlements s WHERE s.call_id = c.call_id)) x
WHERE coins_spent > CASE WHEN e < 0 THEN 0 ELSE rate * (e / 60 + 1) END
   OR coins_spent < CASE WHEN e < 120 THEN 0 ELSE rate * ((e - 120) / 60 + 1) END;
