-- Rule: the dataset exists in the file and is a dataset (not a group), it is
-- rectangular (variable-length/ragged data cannot be served as an array), and
-- reading it opens no other file. The rule name carries the probe's finding:
-- dataset_missing, dataset_not_a_dataset, dataset_unreadable, dataset_ragged, and
-- the confinement rules dataset_external_link (anywhere on the path, also behind
-- a soft link), dataset_external_storage, dataset_virtual, dataset_opens_other_file:
-- Tiled confines only the asset's own path, so these would let the server read
-- files outside the data directory. dataset_attrs_unusable: an HDF5 attribute that
-- cannot become JSON metadata (Tiled copies every attribute into the array node).
-- dataset_dtype_unsupported: a dtype Tiled's structures cannot describe exactly
-- (a compound with a string field...): its adapter would refuse every read.
-- dataset_filter_unavailable: compressed with an HDF5 filter that neither HDF5 nor
-- hdf5plugin (which Tiled's server imports) can decode. dataset_null_dataspace: an
-- HDF5 null dataspace (h5py.Empty) holds no array at all. dataset_unreadable_chunks
-- (check --deep): a chunk that does not read or decode; dataset_too_large_to_read
-- (check --deep): more logical bytes than --max-array-size, so not read.
-- Reads: artifacts, probes.
SELECT CASE WHEN p.dataset_status = 'ok' THEN 'dataset_ragged'
            ELSE 'dataset_' || p.dataset_status END AS rule,
       'error' AS severity, a.manifest, a.row, 'dataset' AS "column", a.dataset AS value,
       a.file || ': ' || CASE WHEN p.dataset_status = 'ok'
                              THEN a.dataset || ' is variable-length (ragged, dtype ' || p.dtype
                                   || '); Tiled serves rectangular arrays only'
                              ELSE p.dataset_message END AS message
FROM artifacts AS a
JOIN probes AS p ON p.file = a.file AND p.dataset = a.dataset
WHERE p.file_status = 'ok' AND (p.dataset_status <> 'ok' OR p.ragged)
