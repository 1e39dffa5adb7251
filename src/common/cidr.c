/*
 * cidr.c - CIDR parsing and matching, and the address classes of the SSRF guard (cidr.h).
 * The forbidden table lists every range an upstream URL may not resolve to unless
 * gateway.egress.allowCidrs names it: RFC 6890 special-purpose blocks that reach this host, its
 * network or a cloud's metadata service. Read next: upstream/remote_conn.c (the guard).
 */
#include "cidr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static void clear_host_bits(uint8_t *a, unsigned bytes, unsigned prefix)
{
    for (unsigned i = 0; i < bytes; i++) {
        unsigned bit = i * 8;
        if (bit >= prefix)
            a[i] = 0;
        else if (prefix - bit < 8)
            a[i] &= (uint8_t)(0xffu << (8 - (prefix - bit)));
    }
}

int mg_cidr_parse(const char *text, mg_cidr_t *out, char *why, size_t whylen)
{
    char buf[64];
    memset(out, 0, sizeof *out);
    size_t len = strlen(text);
    if (len == 0 || len >= sizeof buf) {
        snprintf(why, whylen, "not an address block like 10.0.0.0/8 or fd00::/8");
        return -1;
    }
    memcpy(buf, text, len + 1);
    char *slash = strchr(buf, '/');
    if (slash != NULL)
        *slash = '\0';
    if (inet_pton(AF_INET, buf, out->addr) == 1) {
        out->family = AF_INET;
        out->prefix = 32;
    } else if (inet_pton(AF_INET6, buf, out->addr) == 1) {
        out->family = AF_INET6;
        out->prefix = 128;
    } else {
        snprintf(why, whylen, "'%s' is not an IPv4 or IPv6 address (give a block like 10.0.0.0/8)", buf);
        return -1;
    }
    if (slash != NULL) {
        char *end;
        unsigned long p = strtoul(slash + 1, &end, 10);
        if (slash[1] == '\0' || *end != '\0' || p > out->prefix) {
            snprintf(why, whylen, "the prefix length after '/' must be 0..%u", out->prefix);
            return -1;
        }
        out->prefix = (unsigned)p;
    }
    clear_host_bits(out->addr, out->family == AF_INET ? 4 : 16, out->prefix);
    return 0;
}

static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* An IPv4-mapped IPv6 address becomes the IPv4 address it carries. */
static void normalize(int *family, const uint8_t **addr)
{
    if (*family == AF_INET6 && memcmp(*addr, v4mapped, 12) == 0) {
        *family = AF_INET;
        *addr += 12;
    }
}

static int prefix_eq(const uint8_t *a, const uint8_t *b, unsigned prefix)
{
    unsigned full = prefix / 8, rest = prefix % 8;
    if (memcmp(a, b, full) != 0)
        return 0;
    if (rest == 0)
        return 1;
    uint8_t mask = (uint8_t)(0xffu << (8 - rest));
    return (a[full] & mask) == (b[full] & mask);
}

int mg_cidr_match(const mg_cidr_t *c, int family, const uint8_t *addr)
{
    normalize(&family, &addr);
    if (family != c->family)
        return 0;
    return prefix_eq(addr, c->addr, c->prefix);
}

static const struct {
    const char *block;
    const char *klass;
} forbidden[] = {
    {"169.254.169.254/32", "metadata"}, /* before link-local: the name says more */
    {"fd00:ec2::254/128", "metadata"},  {"0.0.0.0/8", "unspecified"},
    {"10.0.0.0/8", "private"},          {"100.64.0.0/10", "shared"},
    {"127.0.0.0/8", "loopback"},        {"169.254.0.0/16", "link-local"},
    {"172.16.0.0/12", "private"},       {"192.0.0.0/24", "reserved"},
    {"192.168.0.0/16", "private"},      {"198.18.0.0/15", "reserved"},
    {"224.0.0.0/4", "multicast"},       {"240.0.0.0/4", "reserved"},
    {"::/128", "unspecified"},          {"::1/128", "loopback"},
    {"64:ff9b::/96", "reserved"}, /* NAT64 reaches IPv4 behind the translator: private ones too */
    {"fc00::/7", "unique-local"},       {"fe80::/10", "link-local"},
    {"fec0::/10", "reserved"},          {"ff00::/8", "multicast"},
};

const char *mg_cidr_forbidden(int family, const uint8_t *addr)
{
    static mg_cidr_t table[sizeof forbidden / sizeof forbidden[0]];
    static int parsed;
    if (!parsed) {
        char why[8];
        for (size_t i = 0; i < sizeof forbidden / sizeof forbidden[0]; i++)
            (void)mg_cidr_parse(forbidden[i].block, &table[i], why, sizeof why);
        parsed = 1;
    }
    for (size_t i = 0; i < sizeof forbidden / sizeof forbidden[0]; i++)
        if (mg_cidr_match(&table[i], family, addr))
            return forbidden[i].klass;
    return NULL;
}

const char *mg_cidr_addr_text(int family, const uint8_t *addr, char *buf, size_t n)
{
    if (inet_ntop(family, addr, buf, (socklen_t)n) == NULL && n > 0)
        buf[0] = '\0';
    return buf;
}
