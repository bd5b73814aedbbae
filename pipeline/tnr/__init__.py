"""Packaging time-resolved neutron reflectometry (tNR) runs into Iceberg tables."""
