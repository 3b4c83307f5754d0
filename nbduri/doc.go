// Package nbduri parses the administrator's NBD addresses,
// nbd://HOST[:PORT][/EXPORT], after the NBD URI specification
// (doc/uri.md in the NBD project): an IPv6 host goes in brackets, the port
// defaults to 10809, and the export name is the percent-decoded path
// without its leading slash (empty: the server's default export). TLS
// (nbds://), Unix sockets (nbd+unix://) and query parameters are not
// supported and are refused with an error saying so.
package nbduri
