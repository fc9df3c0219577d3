#!/usr/bin/env sh
# The benchmarks behind the figures in benchmarks/README.md. Run from the repository root
# with the project's virtualenv active (or CROUPIER=".venv/bin/croupier" PYTHON=".venv/bin/python"
# sh benchmarks/run.sh).
# Add --json to any command for machine-readable output.
set -eu
CROUPIER=${CROUPIER:-croupier}

$CROUPIER bench fanout --subscribers 1000 --rate 100 --duration 10 --transport ws --pin
$CROUPIER bench fanout --subscribers 1000 --rate 100 --duration 10 --transport sse --pin
$CROUPIER bench idle --connections 10000 --transport ws --pin
$CROUPIER bench publish --mode both --connections 64 --pipeline 2 --batch-size 1000 --pin
$CROUPIER bench matchmaking --tickets 10000 --passes 20 --rooms 20 --actions 200 --pin
$CROUPIER bench sports --viewers 10000 --reactions 1000 --duration 10
$CROUPIER bench connect --clients 4000 --pin --repeat 5
for kind in bare token url; do
  ${PYTHON:-python} benchmarks/connect_path.py --instructions $kind
done
$CROUPIER bench storm --clients 10000 --missed 10 --pin
$CROUPIER bench storm --clients 10000 --missed 10 --pin --resume url
for n in 1 5 20 100; do
  $CROUPIER bench fanout --subscribers 1000 --rate 5 --duration 10 --burst $n --pin
done
$CROUPIER bench storm --clients 18000 --missed 10 --admit-rate 1000 --pin
