/*
 * A TLS 1.2 client that changes its certificate in the middle of a connection, as an attacker would:
 * it connects with one certificate, sends a request, renegotiates presenting another certificate
 * (SSL_use_certificate_file + SSL_use_PrivateKey_file, SSL_renegotiate, SSL_do_handshake), then sends
 * a second request on the same connection. Node's `tls.TLSSocket#renegotiate()` cannot change the
 * client's certificate, hence this program. Built by test/attacks/renegotiating-client.test.ts.
 *
 * usage: renegotiate-client PORT CA CERT KEY NEW_CERT NEW_KEY PATH [early|h2]
 *   early: renegotiate before the first request (the plugin then first looks after the new handshake)
 *   h2: negotiate HTTP/2 by ALPN, open the session (preface and SETTINGS), then renegotiate; no request
 * Prints one line per step, for the test to parse:
 *   FIRST <status> <body>        | FIRST ERROR <reason>
 *   RENEGOTIATE OK               | RENEGOTIATE ERROR <reason>
 *   SECOND <status> <body>       | SECOND ERROR <reason>
 * and exits 0 whatever the server did (2 on bad usage or setup).
 */
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

static void reason (const char *step, const char *what)
{
  unsigned long code = ERR_get_error();
  char text[256] = "";
  if (code != 0) ERR_error_string_n(code, text, sizeof text);
  printf("%s ERROR %s %s\n", step, what, text);
  ERR_clear_error();
}

/* Reads one HTTP/1.1 response with a Content-Length (what Fastify sends); 0 on success. */
static int read_response (SSL *ssl, const char *step)
{
  static char buffer[65536];
  size_t used = 0;
  char *end = NULL;
  while (end == NULL) {
    if (used == sizeof buffer - 1) { printf("%s ERROR response too long\n", step); return 1; }
    int n = SSL_read(ssl, buffer + used, (int)(sizeof buffer - 1 - used));
    if (n <= 0) {
      int error = SSL_get_error(ssl, n);
      reason(step, error == SSL_ERROR_ZERO_RETURN ? "closed" : used > 0 ? "truncated" : "read");
      return 1;
    }
    used += (size_t)n;
    buffer[used] = '\0';
    end = strstr(buffer, "\r\n\r\n");
  }
  size_t head = (size_t)(end - buffer) + 4;
  long length = 0;
  for (char *line = strstr(buffer, "\r\n"); line != NULL && line < end; line = strstr(line + 2, "\r\n")) {
    if (strncasecmp(line + 2, "content-length:", 15) == 0) length = strtol(line + 17, NULL, 10);
  }
  if (length < 0 || head + (size_t)length >= sizeof buffer) { printf("%s ERROR bad length\n", step); return 1; }
  while (used < head + (size_t)length) {
    int n = SSL_read(ssl, buffer + used, (int)(head + (size_t)length - used));
    if (n <= 0) { reason(step, "truncated"); return 1; }
    used += (size_t)n;
  }
  buffer[head + (size_t)length] = '\0';
  int status = 0;
  sscanf(buffer, "HTTP/1.1 %d", &status);
  printf("%s %d %s\n", step, status, buffer + head);
  return 0;
}

static int ask (SSL *ssl, const char *path, const char *step)
{
  char request[1024];
  int size = snprintf(request, sizeof request, "GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n", path);
  if (SSL_write(ssl, request, size) <= 0) { reason(step, "write"); return 1; }
  return read_response(ssl, step);
}

static int renegotiate (SSL *ssl, const char *cert, const char *key)
{
  if (SSL_use_certificate_file(ssl, cert, SSL_FILETYPE_PEM) != 1 ||
      SSL_use_PrivateKey_file(ssl, key, SSL_FILETYPE_PEM) != 1) {
    reason("RENEGOTIATE", "load");
    return 1;
  }
  if (SSL_renegotiate(ssl) != 1) { reason("RENEGOTIATE", "start"); return 1; }
  if (SSL_do_handshake(ssl) != 1) { reason("RENEGOTIATE", "handshake"); return 1; }
  printf("RENEGOTIATE OK\n");
  return 0;
}

int main (int argc, char **argv)
{
  if (argc < 8) {
    fprintf(stderr, "usage: %s PORT CA CERT KEY NEW_CERT NEW_KEY PATH [early]\n", argv[0]);
    return 2;
  }
  int early = argc > 8 && strcmp(argv[8], "early") == 0;
  int h2 = argc > 8 && strcmp(argv[8], "h2") == 0;
  setvbuf(stdout, NULL, _IONBF, 0);

  SSL_CTX *context = SSL_CTX_new(TLS_client_method());
  if (context == NULL ||
      SSL_CTX_set_min_proto_version(context, TLS1_2_VERSION) != 1 ||
      SSL_CTX_set_max_proto_version(context, TLS1_2_VERSION) != 1 ||
      SSL_CTX_load_verify_locations(context, argv[2], NULL) != 1 ||
      SSL_CTX_use_certificate_file(context, argv[3], SSL_FILETYPE_PEM) != 1 ||
      SSL_CTX_use_PrivateKey_file(context, argv[4], SSL_FILETYPE_PEM) != 1) {
    ERR_print_errors_fp(stderr);
    return 2;
  }
  SSL_CTX_set_verify(context, SSL_VERIFY_PEER, NULL);

  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in address = { .sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(argv[1])) };
  inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
  if (fd < 0 || connect(fd, (struct sockaddr *)&address, sizeof address) != 0) {
    perror("connect");
    return 2;
  }
  SSL *ssl = SSL_new(context);
  SSL_set_fd(ssl, fd);
  SSL_set_tlsext_host_name(ssl, "localhost");
  static const unsigned char alpn[] = { 2, 'h', '2' };
  if (h2 && SSL_set_alpn_protos(ssl, alpn, sizeof alpn) != 0) return 2;
  if (SSL_connect(ssl) != 1) {
    ERR_print_errors_fp(stderr);
    return 2;
  }

  if (h2) {
    /* The connection preface and an empty SETTINGS frame make the server create its HTTP/2 session. */
    static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\4\0\0\0\0\0";
    const unsigned char *protocol = NULL;
    unsigned int length = 0;
    SSL_get0_alpn_selected(ssl, &protocol, &length);
    printf("ALPN %.*s\n", (int)length, protocol == NULL ? "" : (const char *)protocol);
    char settings[9];
    if (SSL_write(ssl, preface, sizeof preface - 1) <= 0 || SSL_read(ssl, settings, sizeof settings) <= 0) {
      reason("SESSION", "open");
    } else {
      renegotiate(ssl, argv[5], argv[6]);
    }
  } else if (early) {
    if (renegotiate(ssl, argv[5], argv[6]) == 0) ask(ssl, argv[7], "SECOND");
  } else if (ask(ssl, argv[7], "FIRST") == 0 && renegotiate(ssl, argv[5], argv[6]) == 0) {
    ask(ssl, argv[7], "SECOND");
  }
  SSL_free(ssl);
  close(fd);
  SSL_CTX_free(context);
  return 0;
}
