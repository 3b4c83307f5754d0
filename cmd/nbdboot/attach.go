package main

import "errors"

// runAttach attaches an export to a local /dev/nbdN.
func runAttach(args []string) error { return errors.New("attach: not implemented yet") }

// runDetach disconnects a /dev/nbdN.
func runDetach(args []string) error { return errors.New("detach: not implemented yet") }

// runList lists a server's exports.
func runList(args []string) error { return errors.New("list: not implemented yet") }
