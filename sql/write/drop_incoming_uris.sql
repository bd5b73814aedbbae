DROP TABLE incoming_uris
