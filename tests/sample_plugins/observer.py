from batchcore import hookimpl

EVENTS = []


@hookimpl
def batchcore_job_event(event):
    EVENTS.append(event)
