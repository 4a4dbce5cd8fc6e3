"""`p419 doctor`: one function per check, run concurrently, each with a timeout and a fix."""
