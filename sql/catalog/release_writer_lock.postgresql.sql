-- Release the broker's writer lock taken by try_writer_lock.
SELECT pg_advisory_unlock(hashtext('manifest-broker writer'))
