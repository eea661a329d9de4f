#!/bin/bash -eu
# After `cargo run --release -p opsworks -- up` (as root), from the repository's top directory. The
# README holds this script line for line; tests/lifecycle/test_quickstart.py runs it.
endpoint=${OPSWORKS_ENDPOINT:-http://127.0.0.1:9730}
data_dir=${OPSWORKS_DATA_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/opsworks}
opsworks=${OPSWORKS_BIN:-target/release/opsworks}
# The root credentials `up` wrote (--profile: not the AWS_* variables you may have set).
export AWS_SHARED_CREDENTIALS_FILE=$data_dir/root-credentials AWS_DEFAULT_REGION=us-east-1 AWS_PAGER=
ow() { aws opsworks --profile default --endpoint-url "$endpoint" "$@"; }

# The sample app and cookbook as git repositories at a local path of the host.
repos=$(scripts/serve-examples.sh)

stack=$(ow create-stack --name hello --stack-region us-east-1 \
  --service-role-arn arn:aws:iam::123456789012:role/aws-opsworks-service-role \
  --default-instance-profile-arn arn:aws:iam::123456789012:instance-profile/aws-opsworks-ec2-role \
  --use-custom-cookbooks --custom-cookbooks-source "Type=git,Url=$repos/cookbooks.git,Revision=main" \
  --query StackId --output text)
layer=$(ow create-layer --stack-id "$stack" --type nodejs-app --name "Node.js App Server" \
  --shortname nodejs-app --custom-recipes Setup=hello::setup --query LayerId --output text)
app=$(ow create-app --stack-id "$stack" --name Hello --shortname hello --type nodejs \
  --app-source "Type=git,Url=$repos/hello-app.git,Revision=main" \
  --environment Key=GREETING,Value=Hello --query AppId --output text)
instance=$(ow create-instance --stack-id "$stack" --layer-ids "$layer" --instance-type t3.micro \
  --query InstanceId --output text)
ow start-instance --instance-id "$instance"
ow wait instance-online --instance-ids "$instance"    # it boots, runs Setup, deploys the app
ip=$(ow describe-instances --instance-ids "$instance" --query 'Instances[0].PrivateIp' --output text)
curl -sS --retry 5 --retry-connrefused "http://$ip/"

# Deploy again, say after editing examples/hello-app/VERSION and running scripts/serve-examples.sh.
deployment=$(ow create-deployment --stack-id "$stack" --app-id "$app" --command Name=deploy \
  --query DeploymentId --output text)
ow wait deployment-successful --deployment-ids "$deployment"
ow describe-commands --deployment-id "$deployment" --query 'Commands[].[Type,Status,LogUrl]' --output text

# Into the instance: a command, or root's shell without one (no terminal of its own: see README).
"$opsworks" exec --data-dir "$data_dir" "$instance" -- cat /etc/hello/motd.txt
