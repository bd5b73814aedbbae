-- Staging for the data URIs a run needs, to find the assets that already exist.
CREATE TEMPORARY TABLE incoming_uris (data_uri VARCHAR(1023) PRIMARY KEY)
