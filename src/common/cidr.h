/*
 * cidr.h - IP address ranges (CIDR blocks) and the egress address classes the SSRF guard refuses.
 *
 * Pure functions on plain data, no allocation: the config parser reads gateway.egress.allowCidrs
 * with mg_cidr_parse(), the remote upstream (upstream/remote_conn.c) checks every address a URL's
 * host resolves to with mg_cidr_forbidden() and mg_cidr_match(). IPv4-mapped IPv6 addresses
 * (::ffff:a.b.c.d) are judged as the IPv4 address they carry. Read next: upstream/remote_conn.c.
 */
#ifndef MG_COMMON_CIDR_H
#define MG_COMMON_CIDR_H

#include <stddef.h>
#include <stdint.h>

typedef struct mg_cidr {
    int family;       /* AF_INET or AF_INET6 */
    uint8_t addr[16]; /* network address, 4 or 16 bytes used */
    unsigned prefix;  /* 0..32 or 0..128 */
} mg_cidr_t;

/* Parses "10.0.0.0/8", "fd00::/8" or a single address ("127.0.0.1" = /32, "::1" = /128). Host bits
 * set beyond the prefix are cleared. Returns 0, or -1 with a reason (no trailing period) in why. */
int mg_cidr_parse(const char *text, mg_cidr_t *out, char *why, size_t whylen);

/* 1 when the address (family AF_INET with 4 bytes or AF_INET6 with 16) lies in the block. An
 * IPv4-mapped IPv6 address matches IPv4 blocks. */
int mg_cidr_match(const mg_cidr_t *c, int family, const uint8_t *addr);

/* The class name when the address is one an upstream URL may not reach without an explicit
 * allowance ("loopback", "private", "link-local", "metadata", "unique-local", "unspecified",
 * "multicast", "shared" (100.64/10), "reserved"), else NULL (a public unicast address). */
const char *mg_cidr_forbidden(int family, const uint8_t *addr);

/* Formats addr as text into buf (INET6_ADDRSTRLEN is enough). Returns buf. */
const char *mg_cidr_addr_text(int family, const uint8_t *addr, char *buf, size_t n);

#endif
