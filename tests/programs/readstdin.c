/*
 * readstdin.c - reading standard input.
 *
 * Exercises: read(0, ...) in a loop with a tiny buffer (many short reads,
 * EOF handling), stdio input (setvbuf, fgets), toupper, buffered stdout.
 *
 * Usage:  readstdin [--fgets]
 *   Default mode: stdin is made unbuffered (setvbuf _IONBF, so stdio reads
 *   one byte at a time and never reads ahead), the FIRST line is read with
 *   fgets and the rest of the input with read(2) using an 11-byte buffer.
 *   --fgets mode: the whole input is read with buffered fgets and a 16-byte
 *   line buffer (long lines take several fgets calls).
 * Output: the input with ASCII letters upper-cased (byte-for-byte otherwise),
 *   then a final line "lines=<L> words=<W> bytes=<B>", where L counts '\n'
 *   characters, W counts maximal runs of non-whitespace (space, \t, \n, \v,
 *   \f, \r), B counts bytes (like wc).  Empty input -> "lines=0 words=0 bytes=0".
 *   If the input does not end with '\n' a '\n' is printed before the counts.
 * Exit status: 0 (1 on a read error).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static long lines, words, bytes;
static int in_word, last_char = '\n';

static int is_space(int c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

static void consume(const char *p, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '\n')
            lines++;
        if (is_space(c)) {
            in_word = 0;
        } else if (!in_word) {
            in_word = 1;
            words++;
        }
        putchar(c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c);
        last_char = c;
    }
    bytes += (long)n;
}

int main(int argc, char **argv)
{
    char line[16];
    char buf[11];
    ssize_t n;

    if (argc > 1 && strcmp(argv[1], "--fgets") == 0) {
        while (fgets(line, sizeof line, stdin) != NULL)
            consume(line, strlen(line)); /* text input: no NULs */
        if (ferror(stdin)) {
            fprintf(stderr, "readstdin: fgets error\n");
            return 1;
        }
    } else {
        setvbuf(stdin, NULL, _IONBF, 0);
        /* First line (possibly in several pieces) via fgets. */
        while (fgets(line, sizeof line, stdin) != NULL) {
            size_t len = strlen(line);
            consume(line, len);
            if (len && line[len - 1] == '\n')
                break;
        }
        /* Rest via raw read(2). */
        for (;;) {
            n = read(0, buf, sizeof buf);
            if (n < 0) {
                if (errno == EINTR)
                    continue;
                perror("readstdin: read");
                return 1;
            }
            if (n == 0)
                break;
            consume(buf, (size_t)n);
        }
    }
    if (last_char != '\n')
        putchar('\n');
    printf("lines=%ld words=%ld bytes=%ld\n", lines, words, bytes);
    return 0;
}
