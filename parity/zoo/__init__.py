"""Every registered twin pair, one file per family: whole models and the blocks they are made of (a failing
block pinpoints a fault faster than a failing model). :func:`parity.registry.names` imports every module
here, in file name order; registration order within a file is listing order."""
