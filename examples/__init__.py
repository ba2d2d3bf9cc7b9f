"""Example services instrumented with the observatory client; a package so `celery -A examples.…` works."""
