package target

// A connector whose files are the whole deploy (an app that watches a
// directory: nothing serves them over the network) verifies a deploy by
// reading its files back, not at post_deploy_verify.endpoint. Validate, which
// does not know the connectors, learns which target types those are here.

var readBack = map[string]bool{} // guarded by ownMu

// RegisterReadBack records whether target_type's connector verifies by
// reading its files back (connectors.ReadBackVerifier): Validate then
// requires no post_deploy_verify.endpoint for it. connectors.Register calls
// it.
func RegisterReadBack(targetType string, readsBack bool) {
	ownMu.Lock()
	defer ownMu.Unlock()
	readBack[targetType] = readsBack
}

// ReadsBack reports whether target_type's connector verifies by reading its
// files back.
func ReadsBack(targetType string) bool {
	ownMu.RLock()
	defer ownMu.RUnlock()
	return readBack[targetType]
}
