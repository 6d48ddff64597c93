/* A correct echo server in C for lab 4: many clients at once, every byte sent back.
 *
 * Build:  cc -o server server.c       Usage:  ./server PORT
 * Graded: lab-grade echo-server -- sh examples/echo/correct-c/run.sh {port}
 *
 * - One process per client (fork), so an idle client never blocks the others.
 * - It sends back exactly what each recv() returned, looping until send() has written all
 *   of it (send may write less than asked): an echo needs no framing at all.
 * - A client that vanishes ends only its own process: recv() or send() returns -1
 *   (ECONNRESET), and MSG_NOSIGNAL keeps a write to a closed connection from killing the
 *   process with SIGPIPE.
 */
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

static void serve(int client) {
    char buf[65536];
    ssize_t n;
    while ((n = recv(client, buf, sizeof buf, 0)) > 0) {
        for (ssize_t sent = 0; sent < n;) {
            ssize_t k = send(client, buf + sent, n - sent, MSG_NOSIGNAL);
            if (k < 0) return; /* the client vanished */
            sent += k;
        }
    }
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s PORT\n", argv[0]);
        return 2;
    }
    signal(SIGCHLD, SIG_IGN); /* finished children are reaped by the kernel */
    int listener = socket(AF_INET, SOCK_STREAM, 0), yes = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1]))};
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    if (bind(listener, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(listener, 16) < 0) {
        perror("bind/listen");
        return 1;
    }
    printf("listening on 127.0.0.1:%s\n", argv[1]);
    for (;;) {
        int client = accept(listener, NULL, NULL);
        if (client < 0) continue;
        if (fork() == 0) {
            close(listener);
            serve(client);
            _exit(0);
        }
        close(client);
    }
}
