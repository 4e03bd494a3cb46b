"""A moto server (EC2 + S3) for one test, with SigV4 really checked.

Run with the moto virtualenv's python (scripts/peers install). Starts moto on a free port
on 127.0.0.1 with INITIAL_NO_AUTH_ACTION_COUNT=3: the first three requests (ours, below)
create an IAM user with an inline allow-all policy and an access key; every later request
must be signed with that key. Prints one JSON line {"endpoint", "access_key_id",
"secret_access_key"} and serves until its stdin closes (the test holding it ended).

It is also the tests' independent oracle (boto3, the AWS SDK, not the broker's code): each
line on stdin is a question, answered by one JSON line:
  instances TAG_VALUE   -> instances tagged alliance:broker-id=TAG_VALUE: [{id, state, tags}]
  volumes TAG_VALUE     -> volumes likewise: [{id, state, tags}]
  bucket NAME           -> {"exists": bool, "tags": {..}}
  image                 -> an available image id
"""
import json
import os
import socket
import sys

os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = "3"

import boto3  # noqa: E402
from moto.server import ThreadedMotoServer  # noqa: E402


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def main():
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1",
                       aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
    iam.create_user(UserName="broker")
    iam.put_user_policy(UserName="broker", PolicyName="all", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
    key = iam.create_access_key(UserName="broker")["AccessKey"]
    print(json.dumps({"endpoint": endpoint, "access_key_id": key["AccessKeyId"],
                      "secret_access_key": key["SecretAccessKey"]}), flush=True)
    session = dict(endpoint_url=endpoint, region_name="eu-west-3",
                   aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"])
    ec2 = boto3.client("ec2", **session)
    s3 = boto3.client("s3", **session)
    for line in sys.stdin:
        what, _, arg = line.strip().partition(" ")
        tag_filter = [{"Name": "tag:alliance:broker-id", "Values": [arg]}]
        tags = lambda t: {x["Key"]: x["Value"] for x in (t or [])}  # noqa: E731
        if what == "instances":
            found = [{"id": i["InstanceId"], "state": i["State"]["Name"], "tags": tags(i.get("Tags"))}
                     for r in ec2.describe_instances(Filters=tag_filter)["Reservations"] for i in r["Instances"]]
        elif what == "volumes":
            found = [{"id": v["VolumeId"], "state": v["State"], "tags": tags(v.get("Tags"))}
                     for v in ec2.describe_volumes(Filters=tag_filter)["Volumes"]]
        elif what == "bucket":
            names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
            found = {"exists": arg in names, "tags": {}}
            if arg in names:
                try:
                    found["tags"] = tags(s3.get_bucket_tagging(Bucket=arg)["TagSet"])
                except s3.exceptions.ClientError:
                    pass
        elif what == "image":
            found = sorted(i["ImageId"] for i in ec2.describe_images(
                Filters=[{"Name": "state", "Values": ["available"]}])["Images"])[0]
        else:
            found = {"error": f"unknown question {what!r}"}
        print(json.dumps(found), flush=True)
    server.stop()


if __name__ == "__main__":
    main()
