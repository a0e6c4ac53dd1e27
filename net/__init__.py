"""The network room: remote DICOM nodes, DIMSE query/retrieve, the storage SCP.

Depends on ``core``, ``dicomio`` and ``store`` only (no Qt, no VTK, no ``app``):
what arrives is handed to an ``index`` callable the caller supplies
(:class:`net.filing.Filer`), so the app decides how files join the library.
"""
