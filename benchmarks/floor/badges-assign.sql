-- The floor of badge assignment: one upsert. :'day' is the target date, :'from' and
-- :'to' the UTC bounds of the business day before it.
INSERT INTO listener_badges (listener_id, date, badge, audio_rate_per_minute,
                             video_rate_per_minute, assigned_at, created_at, updated_at)
SELECT r.user_id, :'day'::date, b.badge, b.audio, b.video, :'now', :'now', :'now'
FROM user_roles r
LEFT JOIN user_status s ON s.user_id = r.user_id
LEFT JOIN (SELECT listener_id, sum(duration_minutes) AS minutes FROM user_calls
           WHERE status IN ('completed', 'dropped')
             AND start_time >= :'from'::timestamptz AND start_time < :'to'::timestamptz
           GROUP BY listener_id) m ON m.listener_id = r.user_id
CROSS JOIN LATERAL (
    SELECT * FROM (VALUES ('gold', 180, 1.80, 10.00), ('silver', 120, 1.50, 8.50),
                          ('bronze', 60, 1.25, 7.00), ('basic', 0, 1.00, 6.00))
           AS t (badge, least_minutes, audio, video)
    WHERE coalesce(m.minutes, 0) >= t.least_minutes
    ORDER BY t.least_minutes DESC LIMIT 1
) b
WHERE r.role = 'listener' AND s.is_active IS NOT FALSE
ON CONFLICT (listener_id, date) DO UPDATE
SET badge = excluded.badge, audio_rate_per_minute = excluded.audio_rate_per_minute,
    video_rate_per_minute = excluded.video_rate_per_minute, assigned_at = excluded.assigned_at,
    updated_at = excluded.updated_at;
