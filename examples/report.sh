#!/bin/sh
# Example exec handler: reads the task JSON on stdin and "produces a report".
# taskpipe sets TASKPIPE_JOB, TASKPIPE_TASK, TASKPIPE_MESSAGE_ID and TASKPIPE_RECEIVE_COUNT.
# Exit 0 means success; anything else is a failure and the task is retried later.
task=$(cat)
echo "job=${TASKPIPE_JOB:-?} attempt=${TASKPIPE_RECEIVE_COUNT:-?} task=${task}"
echo "report ready"
