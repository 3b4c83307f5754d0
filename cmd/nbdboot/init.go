package main

import "errors"

// runInit is the PID 1 path.
func runInit(args []string) error { return errors.New("init: not implemented yet") }
