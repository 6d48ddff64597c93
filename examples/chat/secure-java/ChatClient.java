// A secure chat client in Java: verifies the server, full duplex.
//
// Usage:  sh client.sh HOST PORT [CA]   (CA defaults to $LAB_CA)
// Graded: lab-grade chat-client -- sh examples/chat/secure-java/client.sh {host} {port} {ca}
//
// How it is built, and why:
// - It trusts only the CA file it is given, and checks the server's name: the trust store
//   holds that one CA, and endpoint identification ("HTTPS") checks that the certificate is
//   for localhost. An impostor with a certificate from another CA, or for another name, is
//   refused. (JSSE checks the name only when asked to: without setEndpointIdentification-
//   Algorithm any certificate the CA signed would do, for whatever name.)
// - Full duplex with two threads: one prints the server's lines, the other sends the
//   keyboard's. JSSE lets one thread read while another writes on the same SSLSocket.
// - Framing: lines, read with readLine(), so TCP's cuts do not matter.
// - Errors are sentences, not stack traces: a refused connection or a certificate that
//   cannot be verified is reported in one line, with exit code 1.
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.net.ConnectException;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.KeyStore;
import java.security.cert.CertificateFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLException;
import javax.net.ssl.SSLParameters;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.TrustManagerFactory;

public final class ChatClient {
    /** Set when the user typed Exit: the reader thread's end is then expected. */
    private static volatile boolean leaving;

    public static void main(String[] args) {
        if (args.length != 2 && args.length != 3) {
            System.err.println("usage: ChatClient HOST PORT [CA]");
            System.exit(2);
        }
        String host = args[0];
        String port = args[1];
        String ca = args.length == 3 ? args[2] : System.getenv("LAB_CA");
        SSLContext context;
        try {
            context = contextTrusting(ca);
        } catch (IOException | GeneralSecurityException error) {
            System.err.println("client: could not load the CA " + ca + ": " + error.getMessage());
            System.exit(1);
            return;
        }
        SSLSocket socket;
        try {
            Socket tcp = new Socket(host, Integer.parseInt(port));
            // TLS over the connected socket, verified for the name localhost.
            socket = (SSLSocket) context.getSocketFactory().createSocket(tcp, "localhost", tcp.getPort(), true);
            SSLParameters parameters = socket.getSSLParameters();
            parameters.setEndpointIdentificationAlgorithm("HTTPS");
            parameters.setProtocols(new String[] {"TLSv1.3", "TLSv1.2"});
            socket.setSSLParameters(parameters);
            socket.startHandshake();
        } catch (ConnectException error) {
            System.err.println("client: could not connect to " + host + ":" + port
                    + ": connection refused (is the server running?)");
            System.exit(1);
            return;
        } catch (SSLException error) {
            System.err.println("client: refusing the server at " + host + ":" + port
                    + ": its certificate could not be verified (" + error.getMessage() + ")");
            System.exit(1);
            return;
        } catch (IOException | NumberFormatException error) {
            System.err.println("client: could not connect to " + host + ":" + port + ": " + error.getMessage());
            System.exit(1);
            return;
        }
        say("connected to " + host + ":" + port + " (" + socket.getSession().getProtocol() + "); type Exit to leave");
        Thread reader = new Thread(() -> printServerLines(socket), "server");
        reader.setDaemon(true);
        reader.start();
        sendKeyboardLines(socket);
    }

    private static void printServerLines(SSLSocket socket) {
        try {
            BufferedReader lines = new BufferedReader(
                    new InputStreamReader(socket.getInputStream(), StandardCharsets.UTF_8));
            String line;
            while ((line = lines.readLine()) != null) {
                say("server: " + line);
            }
            say("server left");
            System.exit(0);
        } catch (IOException error) {
            if (!leaving) {
                System.err.println("client: the connection failed: " + error.getMessage());
                System.exit(1);
            }
        }
    }

    /** Typed lines go to the server; Exit (or the end of input) ends the chat. */
    private static void sendKeyboardLines(SSLSocket socket) {
        BufferedReader keyboard = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        try {
            OutputStream out = socket.getOutputStream();
            String line;
            while ((line = keyboard.readLine()) != null && !line.equals("Exit")) {
                out.write((line + "\n").getBytes(StandardCharsets.UTF_8));
                out.flush();
            }
            leaving = true;
            out.write("Exit\n".getBytes(StandardCharsets.UTF_8));
            out.flush();
            socket.close(); // close_notify, then FIN
            System.exit(0);
        } catch (IOException error) {
            System.err.println("client: the connection failed: " + error.getMessage());
            System.exit(1);
        }
    }

    private static void say(String line) {
        System.out.println(line);
        System.out.flush();
    }

    /** A TLS context that trusts the one CA in the PEM file `caPath`, and nothing else. */
    private static SSLContext contextTrusting(String caPath) throws IOException, GeneralSecurityException {
        KeyStore store = KeyStore.getInstance("PKCS12");
        store.load(null, null);
        try (InputStream in = Files.newInputStream(Path.of(caPath))) {
            store.setCertificateEntry("lab-ca", CertificateFactory.getInstance("X.509").generateCertificate(in));
        }
        TrustManagerFactory trust = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        trust.init(store);
        SSLContext context = SSLContext.getInstance("TLS");
        context.init(null, trust.getTrustManagers(), null);
        return context;
    }
}
