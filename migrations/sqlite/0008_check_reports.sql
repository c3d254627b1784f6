-- The whole report of each check (its steps and what Jira said, as JSON), so that any node can show
-- how a check went, not only the node that ran it. NULL for checks recorded before this column.
ALTER TABLE integration_checks ADD COLUMN report TEXT;
