"""The command lines: ``broker`` (:mod:`.main`) and ``iceberg-packager`` (:mod:`._tnr`).

One module per command group, as tiled's own ``commandline`` package: the data
provider's side (:mod:`._provider`), the catalog (:mod:`._catalog`), a running
server (:mod:`._server`), tNR runs (:mod:`._tnr`); :mod:`._shared` holds the options
and checks they share. Commands only parse arguments, call the stage that does the
work, and render its answer through :mod:`manifest_broker.render`. Heavy imports
(tiled, pyiceberg, h5py, duckdb, pyarrow) happen inside the commands, so
``broker --help`` answers at once.
"""

import logging

from manifest_broker.processes import take_interrupts_between_imports

take_interrupts_between_imports()
# One error, one line: psycopg logs a warning of its own ("error ignored terminating
# <psycopg.Copy>: the connection is lost") after the error the broker reports when a
# COPY's server goes away. Library callers keep their own logging setup.
logging.getLogger("psycopg").addHandler(logging.NullHandler())
logging.getLogger("psycopg").propagate = False
