package core

import "github.com/producerd/producerd/remoting"

// dropACLDenialRetry: with ACL credentials configured, NO_PERMISSION is first of all the
// ACL's denial (a wrong key pair, or a user without the right), which every broker repeats,
// so a send does not retry it unless RetryCodes asked for it explicitly. Without
// credentials the Java default stays: NO_PERMISSION (a broker that does not take writes)
// is retried on another broker.
func (p *Producer) dropACLDenialRetry(explicit bool) {
	if p.cfg.Client.Remoting.Credentials != nil && !explicit {
		delete(p.retryCodes, remoting.NoPermission)
	}
}
