-- Only a superuser may switch off triggers for its own session.
SELECT rolsuper FROM pg_roles WHERE rolname = current_user
