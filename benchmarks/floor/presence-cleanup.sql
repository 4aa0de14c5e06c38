-- The floor of presence cleanup: two statements.
BEGIN;
UPDATE user_status SET is_online = FALSE, updated_at = :'now'
WHERE is_online AND last_seen < :'now'::timestamptz - interval '5 minutes';
UPDATE user_status SET is_busy = FALSE, wait_time = NULL, updated_at = :'now'
WHERE (is_busy OR wait_time <= 0)
  AND user_id NOT IN (SELECT user_id FROM user_calls WHERE status = 'ongoing'
                      UNION ALL
                      SELECT listener_id FROM user_calls WHERE status = 'ongoing');
COMMIT;
