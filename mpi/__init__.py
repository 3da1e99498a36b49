"""Master patient index: normalize, block, score, cluster and persist EMPI ids (built in the MPI issue).

Until it lands, `mpi.xref` is created empty by the warehouse contracts and `cdr__patient.empi_id` is NULL.
"""
