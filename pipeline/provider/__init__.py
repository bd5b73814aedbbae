"""What faces the data provider before anything is checked: reading a folder of HDF5
or NeXus files (``explore``, ``nexus``), the dataset card that records it
(``card``), and the advice a failed check prints (``feedback``). It reads files
only through :mod:`manifest_broker.boundary` and imports nothing of ``catalog``.
"""
