"""deploy/: the Dockerfile, the compose file and the Helm chart, checked without Docker or
a cluster."""
