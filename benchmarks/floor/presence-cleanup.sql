-- The floor of presence cleanup: two statements.
BEGIN;
UPDATE user_status SET is_online = FALSE, updated_at = :'now'
WHERE is_online AND last_seen < :'now'::timestamptz - interval '5 minutes';
UPDATE user_status SET is_busy = FALSE, wait_time = NULL, updated_at = :'now'
WHERE (is_busy OR wait_time <= 0)
  AND NOT EXISTS (SELECT FROM user_calls c
                  WHERE c.status = 'ongoing' AND c.user_id = user_status.user_id)
  AND NOT EXISTS (SELECT FROM user_calls c
                  WHERE c.status = 'ongoing' AND c.listener_id = user_status.user_id);
COMMIT;
