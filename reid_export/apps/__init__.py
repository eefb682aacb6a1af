"""What people run end to end, each built from the layers below: the demo, the course project's
prediction files, and ranked-list pictures."""
