package dynamodblocal

// PID lets the tests look for the process in /proc after Stop.
func (s *Server) PID() int { return s.cmd.Process.Pid }
