-- Typed resources: the instance a resource concerns gets its own indexed column (it was an index
-- over the document's InstanceId), and the resources that did not carry their stack in the
-- document (commands, transitions, tags) now do, so each reads back whole as its type.
ALTER TABLE resources ADD COLUMN instance_id TEXT;
UPDATE resources SET instance_id = json_extract(doc, '$.InstanceId')
    WHERE kind IN ('command', 'service_error');
DROP INDEX IF EXISTS resources_by_instance;
CREATE INDEX resources_by_instance ON resources (kind, instance_id);
UPDATE resources SET doc = json_set(doc, '$.StackId', stack_id)
    WHERE kind IN ('command', 'transition', 'tags') AND stack_id IS NOT NULL;
