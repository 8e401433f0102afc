#!/bin/sh
# AIPerf, the serve workload's load generator (llmperf_nb/loadgen.py), for the images of engines that
# have a server; runs inside `docker build` as root, after apt has installed python3 and python3-venv.
#
# In its own venv, /opt/aiperf, as on the host (.venv-aiperf): AIPerf pins huggingface_hub<2 and
# pandas~=2.3, which an engine's environment need not agree with. The Dockerfile sets
# AIPERF=/opt/aiperf/bin/aiperf, where loadgen.executable() looks first. AIPerf needs Python >= 3.11.
#
# Environment (Dockerfile ARG): AIPERF_SPEC, e.g. aiperf==0.13.0 (loadgen.VERSION; a test checks).
set -eux

: "${AIPERF_SPEC:?}"
python3 -m venv /opt/aiperf
/opt/aiperf/bin/pip install "$AIPERF_SPEC"
rm -rf /root/.cache /tmp/pip-*
/opt/aiperf/bin/aiperf --version
