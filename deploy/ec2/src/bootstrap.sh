#!/bin/bash
# First boot (cloud-init runcmd): packages, CloudWatch agent, API token, artifact, service.
set -euo pipefail
exec >>/var/log/tickserver-bootstrap.log 2>&1
export DEBIAN_FRONTEND=noninteractive
region=${AWS::Region}
iid=$(cloud-init query v1.instance_id)
signal() {
  aws cloudformation signal-resource --region "$region" --stack-name "${AWS::StackName}" \
    --logical-resource-id Instance --unique-id "$iid" --status "$1" || true
}
trap 'signal FAILURE' ERR
apt-get update -q
apt-get install -y -q --no-install-recommends awscli curl ca-certificates gnupg python3 logrotate

# CloudWatch agent: AWS's .deb, verified against AWS's signing key (fingerprint below).
arch=$(dpkg --print-architecture)
cw=https://amazoncloudwatch-agent-$region.s3.$region.amazonaws.com
tmp=$(mktemp -d)
curl -fsSL --retry 5 -o "$tmp/agent.deb" "$cw/debian/$arch/latest/amazon-cloudwatch-agent.deb"
curl -fsSL --retry 5 -o "$tmp/agent.deb.sig" "$cw/debian/$arch/latest/amazon-cloudwatch-agent.deb.sig"
curl -fsSL --retry 5 -o "$tmp/agent.gpg" "$cw/assets/amazon-cloudwatch-agent.gpg"
export GNUPGHOME=$tmp/gnupg
mkdir -m 700 "$GNUPGHOME"
gpg --batch --quiet --import "$tmp/agent.gpg"
gpg --batch --with-colons --fingerprint | grep -q '^fpr:*937616F3450B7D806CBD9725D58167303B789C72:'
gpg --batch --verify "$tmp/agent.deb.sig" "$tmp/agent.deb"
dpkg -i -E "$tmp/agent.deb"
/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl -a fetch-config -m ec2 -s \
  -c file:/etc/tickserver/cloudwatch-agent.json
systemctl enable amazon-cloudwatch-agent

# Secrets: the API token from SSM Parameter Store, into a root-only environment file.
token=$(aws ssm get-parameter --region "$region" --with-decryption \
  --name "${ApiTokenParameter}" --query Parameter.Value --output text)
umask 077
printf 'TICKSERVER_API_TOKEN=%s\nAWS_REGION=%s\nAWS_DEFAULT_REGION=%s\n' \
  "$token" "$region" "$region" >/etc/tickserver/tickserver.env
umask 022

systemd-tmpfiles --create /etc/tmpfiles.d/tickserver.conf
/usr/local/sbin/tickserver-install --no-restart \
  "s3://${ArtifactBucket}/${ArtifactPrefix}${ArtifactName}" "${ArtifactSha256}"
systemctl daemon-reload
systemctl enable --now tickserver
for _ in $(seq 120); do
  curl -fs -o /dev/null "http://127.0.0.1:${ApiPort}/healthz" && { signal SUCCESS; exit 0; }
  sleep 5
done
echo "tickserver did not answer /healthz within 10 minutes" >&2
signal FAILURE
exit 1
