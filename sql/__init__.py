"""Every SQL statement the broker runs, one named file each: package data read by manifest_broker.queries."""
