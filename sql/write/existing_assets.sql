SELECT a.id, a.data_uri FROM assets AS a JOIN incoming_uris AS u ON u.data_uri = a.data_uri
