package rmqtest

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// ACL credentials of the ACL cluster profile (cluster.sh RMQ_PROFILE=acl defaults).
const (
	ACLAccessKey = "producerd"
	ACLSecretKey = "producerd-acl-secret"
)

// ACLStatePath returns where the ACL cluster's state file is looked for:
// PRODUCERD_RMQ_ACL_STATE, else <repository root>/.rmq/cluster-acl.json.
func ACLStatePath() string {
	if p := os.Getenv("PRODUCERD_RMQ_ACL_STATE"); p != "" {
		return p
	}
	return filepath.Join(repoRoot(), ".rmq", "cluster-acl.json")
}

// RequireACL returns the running ACL cluster (one broker, broker-acl, with 5.x
// authentication on, started by `RMQ_PROFILE=acl cluster.sh start`). Like Require it skips
// when none runs, and fails with CI=true. Only ACL tests use that cluster, so there is no
// lock.
func RequireACL(t testing.TB) *Cluster {
	t.Helper()
	c, err := load(ACLStatePath())
	if err != nil {
		msg := fmt.Sprintf("ACL RocketMQ not available (%v); start it with `RMQ_PROFILE=acl bash testinfra/rocketmq/cluster.sh start` or run `bash .ci/run`", err)
		if os.Getenv("CI") == "true" {
			t.Fatal("rmqtest: " + msg)
		}
		t.Skip("rmqtest: " + msg)
	}
	return c
}
