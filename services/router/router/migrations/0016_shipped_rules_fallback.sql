-- The trained classifier (issue 22) decides over the shipped keyword rules when it is sure:
-- they become fallbacks. Only the shipped version 1 as the system stored it changes; a
-- supervisor's later versions stay as written (their rules decide over the model).
UPDATE classification_rules
SET rules = (
    SELECT jsonb_agg(
        CASE WHEN rule ->> 'id' IN ('says-urgent', 'refund', 'invoice', 'outage', 'technical',
                                   'praise')
             THEN rule || '{"fallback": true}'::jsonb
             ELSE rule END
        ORDER BY ord)
    FROM jsonb_array_elements(rules) WITH ORDINALITY AS r (rule, ord)
)
WHERE version = 1 AND created_by = 'system';
