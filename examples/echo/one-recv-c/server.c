/* An echo server in C with the classic mistake: one recv() is taken for one line.
 *
 * Build:  cc -o server server.c       Usage:  ./server PORT
 * Graded: lab-grade echo-server -- sh examples/echo/one-recv-c/run.sh {port}
 *
 * What is wrong with it: it strips the newline from what each recv() returned and adds
 * one back, as if every recv() were one message. A line that arrives in two TCP segments
 * comes back as two lines. Everything else is right (one process per client, send loop,
 * MSG_NOSIGNAL), so the grade shows exactly what this one mistake costs.
 */
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int send_all(int fd, const char *data, size_t len) {
    for (size_t sent = 0; sent < len;) {
        ssize_t k = send(fd, data + sent, len - sent, MSG_NOSIGNAL);
        if (k < 0) return -1;
        sent += k;
    }
    return 0;
}

static void serve(int client) {
    char buf[65536];
    ssize_t n;
    while ((n = recv(client, buf, sizeof buf - 1, 0)) > 0) {
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) n--; /* "the message" */
        buf[n++] = '\n';
        if (send_all(client, buf, n) < 0) return;
    }
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s PORT\n", argv[0]);
        return 2;
    }
    signal(SIGCHLD, SIG_IGN);
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
