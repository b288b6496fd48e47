-- Issue 17: what every delivery paid for and nothing read. No query filters or orders
-- deliveries by receipt time alone (the activity log narrows by integration first, through
-- `deliveries_integration_id`), yet each ingest and each processing update (never a HOT
-- update: its status is in the queue index's predicate) added an entry here.
DROP INDEX deliveries_received_at;
