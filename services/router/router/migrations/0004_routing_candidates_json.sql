-- A routing decision lists every agent considered (hundreds): stored as it was written, read
-- back whole, never queried inside. json only checks the text; jsonb also built and sorted a
-- binary tree of it for every assignment.
ALTER TABLE routing_decisions ALTER COLUMN candidates TYPE json USING candidates::json;
