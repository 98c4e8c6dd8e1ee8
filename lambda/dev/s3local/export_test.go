package s3local

// PID lets the tests look for the process in /proc after Stop.
func PID(s *Server) int { return s.cmd.Process.Pid }
