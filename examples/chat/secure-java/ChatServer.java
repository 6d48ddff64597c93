// A secure chat server in Java: TLS, full duplex, one client at a time.
//
// Usage:  sh run.sh PORT [CERT KEY]   (CERT and KEY default to $LAB_CERT and $LAB_KEY)
// Graded: lab-grade chat-server -- sh examples/chat/secure-java/run.sh {port} {cert} {key}
//
// How it is built, and why:
// - TLS (JSSE) with the certificate and key it is given: the client can check whom it is
//   talking to, and nobody on the path can read or change the chat. Java's key stores do
//   not read PEM files, so the certificate and the PKCS#8 key are loaded into a key store
//   held in memory.
// - Full duplex with two threads: one reads the client's lines, the other the keyboard's.
//   Unlike Python's ssl module (one SSL object must not be used from two threads at once),
//   JSSE's SSLSocket lets one thread read while another writes; writes are still made by
//   one thread at a time (synchronized), so that two lines never interleave.
// - Framing: a BufferedReader's readLine() keeps bytes until a newline arrives, however TCP
//   cut or joined them.
// - Each client is served on a thread of its own, handshake included: a plaintext client
//   fails its handshake there and is dropped, while the server goes on accepting.
// - A client that vanishes (a reset) ends only its own session: the IOException is caught
//   and reported in one line. The JVM ignores SIGPIPE, so writing to a vanished peer is an
//   IOException too, never a crash.
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.net.InetAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.KeyFactory;
import java.security.KeyStore;
import java.security.PrivateKey;
import java.security.cert.Certificate;
import java.security.cert.CertificateFactory;
import java.security.spec.PKCS8EncodedKeySpec;
import java.util.Base64;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLServerSocket;
import javax.net.ssl.SSLSocket;

public final class ChatServer {
    /** The client being served, if any; guarded by the class lock. */
    private static SSLSocket current;

    public static void main(String[] args) throws InterruptedException {
        if (args.length != 1 && args.length != 3) {
            System.err.println("usage: ChatServer PORT [CERT KEY]");
            System.exit(2);
        }
        String cert = args.length == 3 ? args[1] : System.getenv("LAB_CERT");
        String key = args.length == 3 ? args[2] : System.getenv("LAB_KEY");
        SSLContext context;
        try {
            context = contextFor(cert, key);
        } catch (IOException | GeneralSecurityException | IllegalArgumentException error) {
            System.err.println("server: could not load " + cert + " and " + key + ": " + error);
            System.exit(1);
            return;
        }
        SSLServerSocket listener;
        try {
            listener = (SSLServerSocket) context.getServerSocketFactory()
                    .createServerSocket(Integer.parseInt(args[0]), 50, InetAddress.getByName("127.0.0.1"));
            listener.setEnabledProtocols(new String[] {"TLSv1.3", "TLSv1.2"});
        } catch (IOException | NumberFormatException error) {
            System.err.println("server: could not listen on 127.0.0.1:" + args[0] + ": " + error.getMessage());
            System.exit(1);
            return;
        }
        say("listening on 127.0.0.1:" + listener.getLocalPort());
        Thread keyboard = new Thread(ChatServer::readKeyboard, "keyboard");
        keyboard.setDaemon(true);
        keyboard.start();
        while (true) {
            try {
                SSLSocket socket = (SSLSocket) listener.accept();
                new Thread(() -> serve(socket), "client").start();
            } catch (IOException error) {
                say("accept failed: " + error.getMessage());
            }
        }
    }

    /** Serves one client: handshake, then its lines until Exit, end of stream or an error. */
    private static void serve(SSLSocket socket) {
        try (socket) {
            socket.startHandshake();
            synchronized (ChatServer.class) {
                if (current != null) {
                    write(socket, "server busy: one client at a time");
                    return;
                }
                current = socket;
            }
            say("client connected from " + socket.getInetAddress().getHostAddress() + ":"
                    + socket.getPort() + " (" + socket.getSession().getProtocol() + ")");
            BufferedReader lines = new BufferedReader(
                    new InputStreamReader(socket.getInputStream(), StandardCharsets.UTF_8));
            try {
                String line;
                while (true) {
                    line = lines.readLine();
                    if (line == null) {
                        say("client left");
                        break;
                    }
                    if (line.equals("Exit")) {
                        say("client said Exit");
                        break;
                    }
                    say("client: " + line);
                }
            } catch (IOException error) {
                say("client vanished (" + error.getClass().getSimpleName() + ")");
            } finally {
                synchronized (ChatServer.class) {
                    current = null;
                }
            }
        } catch (IOException error) {
            // A plaintext client, or one that gave up mid-handshake: dropped, in one line.
            say("connection dropped: " + error.getMessage());
        }
        // Closing the socket (try-with-resources) sends close_notify, then FIN.
    }

    /** Lines typed at the server go to the client being served. */
    private static void readKeyboard() {
        BufferedReader keyboard = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        try {
            String line;
            while ((line = keyboard.readLine()) != null) {
                SSLSocket socket;
                synchronized (ChatServer.class) {
                    socket = current;
                }
                if (socket == null) {
                    say("(no client connected)");
                    continue;
                }
                try {
                    write(socket, line);
                    if (line.equals("Exit")) {
                        socket.close();
                    }
                } catch (IOException error) {
                    say("could not send (" + error.getClass().getSimpleName() + ")");
                }
            }
        } catch (IOException error) {
            // stdin closed: keep serving without a keyboard
        }
    }

    /** Sends one line; one writer at a time, so lines never interleave. */
    private static void write(SSLSocket socket, String line) throws IOException {
        synchronized (socket) {
            OutputStream out = socket.getOutputStream();
            out.write((line + "\n").getBytes(StandardCharsets.UTF_8));
            out.flush();
        }
    }

    private static void say(String line) {
        System.out.println(line);
        System.out.flush();
    }

    /** A TLS context with the certificate chain and key read from PEM files. */
    private static SSLContext contextFor(String certPath, String keyPath)
            throws IOException, GeneralSecurityException {
        Certificate[] chain;
        try (InputStream in = Files.newInputStream(Path.of(certPath))) {
            chain = CertificateFactory.getInstance("X.509").generateCertificates(in).toArray(new Certificate[0]);
        }
        String pem = Files.readString(Path.of(keyPath));
        byte[] der = Base64.getMimeDecoder().decode(pem.replaceAll("-----[A-Z ]+-----", ""));
        PrivateKey key = privateKey(new PKCS8EncodedKeySpec(der), chain[0].getPublicKey().getAlgorithm());
        char[] password = "in-memory".toCharArray();
        KeyStore store = KeyStore.getInstance("PKCS12");
        store.load(null, null);
        store.setKeyEntry("lab", key, password, chain);
        KeyManagerFactory keys = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
        keys.init(store, password);
        SSLContext context = SSLContext.getInstance("TLS");
        context.init(keys.getKeyManagers(), null, null);
        return context;
    }

    private static PrivateKey privateKey(PKCS8EncodedKeySpec spec, String algorithm)
            throws GeneralSecurityException {
        return KeyFactory.getInstance(algorithm).generatePrivate(spec);
    }
}
