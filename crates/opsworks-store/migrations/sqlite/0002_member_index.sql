-- Commands, transitions and service errors are looked up by the instance they concern.
CREATE INDEX resources_by_instance ON resources (kind, json_extract(doc, '$.InstanceId'));
