"""Prepares the local S3 server (moto) for Pricecast's tests, as an operator prepares MinIO.

Creates an IAM user allowed everything, its access key and the test bucket, then prints the key
as JSON. moto is started with INITIAL_NO_AUTH_ACTION_COUNT so that it checks credentials once
these first calls are made: a wrong key is then refused exactly as AWS and MinIO refuse it.

usage: s3_setup.py ENDPOINT BUCKET
"""

import json
import sys

import boto3

ALLOW_ALL = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
}


def main() -> None:
    endpoint, bucket = sys.argv[1], sys.argv[2]
    bootstrap = {"aws_access_key_id": "bootstrap", "aws_secret_access_key": "bootstrap"}
    iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1", **bootstrap)
    iam.create_user(UserName="pricecast-tests")
    iam.put_user_policy(
        UserName="pricecast-tests", PolicyName="all", PolicyDocument=json.dumps(ALLOW_ALL)
    )
    key = iam.create_access_key(UserName="pricecast-tests")["AccessKey"]
    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=key["AccessKeyId"],
        aws_secret_access_key=key["SecretAccessKey"],
    )
    s3.create_bucket(Bucket=bucket)
    print(json.dumps({"access_key_id": key["AccessKeyId"], "secret_access_key": key["SecretAccessKey"]}))


if __name__ == "__main__":
    main()
