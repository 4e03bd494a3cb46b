"""A moto server (EC2 + S3) for one test, with SigV4 really checked.

Run with the moto virtualenv's python (scripts/peers install). Starts moto on a free port
on 127.0.0.1 with INITIAL_NO_AUTH_ACTION_COUNT=3: the first three requests (ours, below)
create an IAM user with an inline allow-all policy and an access key; every later request
must be signed with that key. Prints one JSON line {"endpoint", "access_key_id",
"secret_access_key"} and serves until its stdin closes (the test holding it ended).

It is also the tests' independent oracle (boto3, the AWS SDK, not the broker's code): each
line on stdin is a question, answered by one JSON line:
  instances TAG_VALUE   -> instances tagged alliance:broker-id=TAG_VALUE: [{id, state, tags,
                           type, key_name, user_data (decoded), private_ip, rules}]
  volumes TAG_VALUE     -> volumes likewise: [{id, state, tags, attachments}]
  keypair NAME          -> {"exists": bool}
  object BUCKET KEY     -> {"exists": bool, "body": text}
  bucket NAME           -> {"exists": bool, "tags": {..}}
  image                 -> an available image id
"""
import base64
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


def verify_presigned_urls(secrets):
    """moto's IAM check reads only the Authorization header, so with auth enforced it
    answers 500 to every presigned URL (boto3's own included). Check SigV4 query
    signatures here instead, independently (by the AWS Signature Version 4 specification,
    for the keys this peer made), and refuse a bad, foreign or expired one with 403."""
    import datetime
    import hashlib
    import hmac
    from urllib.parse import parse_qsl, quote, urlsplit
    from moto.core.authorization import ActionAuthenticatorMixin
    from moto.s3.exceptions import S3ClientError

    original = ActionAuthenticatorMixin._authenticate_and_authorize_s3_action

    def check(self, bucket_name=None, key_name=None):
        query = dict(parse_qsl(urlsplit(self.uri).query, keep_blank_values=True))
        if "X-Amz-Signature" not in query:
            return original(self, bucket_name=bucket_name, key_name=key_name)
        def refuse(why):
            raise S3ClientError("AccessDenied", why, status_code=403)
        credential = query.get("X-Amz-Credential", "").split("/")
        if len(credential) != 5 or credential[0] not in secrets:
            refuse("unknown access key")
        signed_at = datetime.datetime.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc)
        if datetime.datetime.now(datetime.timezone.utc) > signed_at + datetime.timedelta(seconds=int(query["X-Amz-Expires"])):
            refuse("Request has expired")
        enc = lambda v: quote(v, safe="-_.~")  # noqa: E731
        canonical_query = "&".join(f"{enc(k)}={enc(v)}" for k, v in sorted(query.items()) if k != "X-Amz-Signature")
        signed_headers = query["X-Amz-SignedHeaders"].split(";")
        headers = "".join(f"{h}:{self.headers.get(h, '').strip()}\n" for h in signed_headers)
        path = self.raw_path.split("?", 1)[0]
        canonical = "\n".join([self.method, path, canonical_query, headers, ";".join(signed_headers), "UNSIGNED-PAYLOAD"])
        scope = "/".join(credential[1:])
        to_sign = "\n".join(["AWS4-HMAC-SHA256", query["X-Amz-Date"], scope, hashlib.sha256(canonical.encode()).hexdigest()])
        key = ("AWS4" + secrets[credential[0]]).encode()
        for part in credential[1:]:
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, query["X-Amz-Signature"]):
            refuse("The request signature we calculated does not match the signature you provided")

    ActionAuthenticatorMixin._authenticate_and_authorize_s3_action = check


def user_data(ec2, instance_id):
    value = ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="userData").get("UserData", {})
    return base64.b64decode(value["Value"]).decode() if value.get("Value") else None


def rules(ec2, group_ids):
    if not group_ids:
        return []
    out = []
    for g in ec2.describe_security_groups(GroupIds=group_ids)["SecurityGroups"]:
        for p in g.get("IpPermissions", []):
            for r in p.get("IpRanges", []):
                out.append({"protocol": p.get("IpProtocol"), "from": p.get("FromPort"), "to": p.get("ToPort"),
                            "cidr": r["CidrIp"], "group": g["GroupName"]})
    return out


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
    verify_presigned_urls({key["AccessKeyId"]: key["SecretAccessKey"]})
    print(json.dumps({"endpoint": endpoint, "access_key_id": key["AccessKeyId"],
                      "secret_access_key": key["SecretAccessKey"]}), flush=True)
    session = dict(endpoint_url=endpoint, region_name="eu-west-3",
                   aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"])
    ec2 = boto3.client("ec2", **session)
    s3 = boto3.client("s3", **session)
    # The groups an instance is in: moto lists those given on its network interface only
    # there (AWS lists the primary interface's groups under SecurityGroups as well).
    for line in sys.stdin:
        what, _, arg = line.strip().partition(" ")
        tag_filter = [{"Name": "tag:alliance:broker-id", "Values": [arg]}]
        tags = lambda t: {x["Key"]: x["Value"] for x in (t or [])}  # noqa: E731
        if what == "instances":
            found = [{"id": i["InstanceId"], "state": i["State"]["Name"], "tags": tags(i.get("Tags")),
                      "type": i.get("InstanceType"), "key_name": i.get("KeyName"),
                      "private_ip": i.get("PrivateIpAddress"), "public_ip": i.get("PublicIpAddress"),
                      "user_data": user_data(ec2, i["InstanceId"]),
                      "rules": rules(ec2, sorted({g["GroupId"] for g in i.get("SecurityGroups", [])}
                                                 | {g["GroupId"] for n in i.get("NetworkInterfaces", [])
                                                    for g in n.get("Groups", [])}))}
                     for r in ec2.describe_instances(Filters=tag_filter)["Reservations"] for i in r["Instances"]]
        elif what == "volumes":
            found = [{"id": v["VolumeId"], "state": v["State"], "tags": tags(v.get("Tags")),
                      "attachments": [{"instance": a["InstanceId"], "device": a["Device"], "state": a["State"]}
                                      for a in v.get("Attachments", [])]}
                     for v in ec2.describe_volumes(Filters=tag_filter)["Volumes"]]
        elif what == "keypair":
            names = [k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"]]
            found = {"exists": arg in names}
        elif what == "group":
            groups = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": [arg]}])
            found = {"exists": bool(groups["SecurityGroups"])}
        elif what == "object":
            bucket, _, key = arg.partition(" ")
            try:
                found = {"exists": True, "body": s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()}
            except s3.exceptions.ClientError:
                found = {"exists": False, "body": ""}
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
