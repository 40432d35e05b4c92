// Package deploy tests the files people install ks-clean from: the
// in-cluster manifest docs/deploy/ks-clean-job.yaml and the roles `ks-clean
// rbac scan` prints are dry-run created on a real kube-apiserver, and the
// binary is run as a kubectl plugin. It has no code of its own.
package deploy
