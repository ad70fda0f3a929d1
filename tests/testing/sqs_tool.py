#!/usr/bin/env python3
"""boto3 as an independent SQS client for the integration tests (moto_server on loopback).

  sqs_tool.py ENDPOINT create NAME [ATTR=VALUE ...]   prints the queue URL
  sqs_tool.py ENDPOINT create-with-dlq NAME MAX_RECEIVES  prints "URL DLQ_URL"
  sqs_tool.py ENDPOINT drain URL [SECONDS]            prints every message as one JSON line
                                                      {"body", "attributes", "message_attributes"}
  sqs_tool.py ENDPOINT send URL BODY                  prints the message id

Exits 1 with the error on stderr when boto3 fails.
"""
import json
import sys
import time

import boto3


def client(endpoint):
    return boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def main(argv):
    endpoint, command, args = argv[1], argv[2], argv[3:]
    sqs = client(endpoint)
    if command == "create":
        attributes = dict(a.split("=", 1) for a in args[1:])
        print(sqs.create_queue(QueueName=args[0], Attributes=attributes)["QueueUrl"])
    elif command == "create-with-dlq":
        name, max_receives = args[0], args[1]
        dlq = sqs.create_queue(QueueName=name + "-dlq")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        policy = json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": str(max_receives)})
        url = sqs.create_queue(QueueName=name, Attributes={"RedrivePolicy": policy})["QueueUrl"]
        print(url, dlq)
    elif command == "drain":
        url = args[0]
        deadline = time.time() + (float(args[1]) if len(args) > 1 else 2.0)
        while time.time() < deadline:
            reply = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                        AttributeNames=["All"], MessageAttributeNames=["All"])
            messages = reply.get("Messages", [])
            for m in messages:
                attributes = {k: {"DataType": v["DataType"], "StringValue": v.get("StringValue")}
                              for k, v in m.get("MessageAttributes", {}).items()}
                print(json.dumps({"body": m["Body"], "attributes": m.get("Attributes", {}),
                                  "message_attributes": attributes}), flush=True)
                sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
            if not messages and len(args) <= 1:
                break
    elif command == "send":
        print(sqs.send_message(QueueUrl=args[0], MessageBody=args[1])["MessageId"])
    else:
        print("unknown command " + command, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except Exception as e:  # noqa: BLE001 - any boto3 failure is a test failure with its message
        print(f"sqs_tool: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
