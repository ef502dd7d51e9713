package safefs

// withoutOpenat2 makes OpenDir walk component by component (the fallback
// for kernels and seccomp filters without openat2) until the returned
// function is called.
func withoutOpenat2() (restore func()) {
	was := noOpenat2.Load()
	noOpenat2.Store(true)
	return func() { noOpenat2.Store(was) }
}
