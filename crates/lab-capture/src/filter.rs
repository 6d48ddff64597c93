//! The kernel-side filter: a small classic BPF program that keeps only one experiment's
//! packets.
//!
//! A packet socket on `lo` sees *every* loopback packet on the machine: other tests running
//! in parallel, other programs. Filtering in user space would still copy all of them out of
//! the kernel, and a busy machine could fill the socket's buffer and drop the very packets we
//! want. A filter attached with `SO_ATTACH_FILTER` runs in the kernel, on each frame, before
//! it is queued: whatever it rejects never reaches us. It is the same mechanism `tcpdump`
//! uses for `tcpdump 'port 41234'` (`tcpdump -d 'port 41234'` prints its program).
//!
//! The program accepts, on Ethernet frames (`lo` carries a 14-byte Ethernet header):
//! - IPv4 or IPv6 TCP and UDP whose source or destination port is one of ours;
//! - ICMP and ICMPv6 errors (such as "port unreachable") that quote a datagram whose source
//!   or destination port is one of ours (the quoted IP header is assumed to have no
//!   options, as for every datagram these labs send).

/// One classic BPF instruction, as the kernel's `struct sock_filter`.
pub type Instruction = libc::sock_filter;

// Opcodes (linux/filter.h, linux/bpf_common.h).
const LD_H_ABS: u16 = 0x28; // A = u16 at [k]
const LD_B_ABS: u16 = 0x30; // A = u8 at [k]
const LD_H_IND: u16 = 0x48; // A = u16 at [x + k]
const LDX_B_MSH: u16 = 0xb1; // X = 4 * ([k] & 0xf): the IPv4 header length
const JEQ_K: u16 = 0x15; // if A == k goto jt else goto jf
const JSET_K: u16 = 0x45; // if A & k goto jt else goto jf
const RET_K: u16 = 0x06; // accept k bytes (0: drop)

/// How many bytes of an accepted frame the kernel keeps: all of it.
const WHOLE_FRAME: u32 = 0x0004_0000;

const ETHERTYPE_IPV4: u32 = 0x0800;
const ETHERTYPE_IPV6: u32 = 0x86dd;
const TCP: u32 = 6;
const UDP: u32 = 17;
const ICMP: u32 = 1;
const ICMPV6: u32 = 58;

/// Where a jump goes: a label resolved when the program is assembled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Next,
    Accept,
    Drop,
    Label(&'static str),
}

#[derive(Debug, Clone, Copy)]
enum Step {
    Op(u16, u32),
    Jump(u16, u32, Target, Target),
    Label(&'static str),
}

/// The program that accepts only packets to or from `ports` (see the module's doc), and
/// IPv4 UDP datagrams to or from `udp_only` (the capture's end marker: UDP port numbers are
/// not TCP's, and another program's TCP connection may well use the same number).
pub fn ports_filter(ports: &[u16], udp_only: &[u16]) -> Vec<Instruction> {
    use Step::{Jump, Label, Op};
    use Target::{Drop, Next};
    let mut steps = vec![
        // Ethernet: which network protocol?
        Op(LD_H_ABS, 12),
        Jump(JEQ_K, ETHERTYPE_IPV4, Target::Label("ipv4"), Next),
        Jump(JEQ_K, ETHERTYPE_IPV6, Target::Label("ipv6"), Drop),
        // IPv4: the protocol byte, then the ports after a header of variable length.
        Label("ipv4"),
        Op(LD_B_ABS, 14 + 9),
        Jump(JEQ_K, TCP, Target::Label("ipv4_tcp"), Next),
        Jump(JEQ_K, UDP, Target::Label("ipv4_udp"), Next),
        Jump(JEQ_K, ICMP, Target::Label("icmp"), Drop),
        Label("ipv4_tcp"),
        // A fragment after the first carries no ports.
        Op(LD_H_ABS, 14 + 6),
        Jump(JSET_K, 0x1fff, Drop, Next),
        Op(LDX_B_MSH, 14),
    ];
    either_port(&mut steps, LD_H_IND, 14, ports);
    steps.extend([
        Label("ipv4_udp"),
        Op(LD_H_ABS, 14 + 6),
        Jump(JSET_K, 0x1fff, Drop, Next),
        Op(LDX_B_MSH, 14),
    ]);
    let udp_ports: Vec<u16> = ports.iter().chain(udp_only).copied().collect();
    either_port(&mut steps, LD_H_IND, 14, &udp_ports);
    steps.extend([Label("icmp"), Op(LDX_B_MSH, 14)]);
    // ICMP header (8 bytes), the quoted IPv4 header (20 bytes), then its ports.
    either_port(&mut steps, LD_H_IND, 14 + 8 + 20, ports);
    // IPv6: a fixed 40-byte header (extension headers are not followed).
    steps.extend([
        Label("ipv6"),
        Op(LD_B_ABS, 14 + 6),
        Jump(JEQ_K, TCP, Target::Label("ipv6_ports"), Next),
        Jump(JEQ_K, UDP, Target::Label("ipv6_ports"), Next),
        Jump(JEQ_K, ICMPV6, Target::Label("icmpv6"), Drop),
        Label("ipv6_ports"),
    ]);
    either_port(&mut steps, LD_H_ABS, 14 + 40, ports);
    steps.push(Label("icmpv6"));
    either_port(&mut steps, LD_H_ABS, 14 + 40 + 8 + 40, ports);
    assemble(&steps)
}

/// Loads the source port at `offset`, then the destination port after it: accepts if either
/// is one of `ports`, drops otherwise. `load` is absolute, or indexed by the X register.
fn either_port(steps: &mut Vec<Step>, load: u16, offset: u32, ports: &[u16]) {
    for field in [offset, offset + 2] {
        steps.push(Step::Op(load, field));
        for &port in ports {
            steps.push(Step::Jump(
                JEQ_K,
                u32::from(port),
                Target::Accept,
                Target::Next,
            ));
        }
    }
    steps.push(Step::Op(RET_K, 0));
}

/// Resolves the labels into the relative jumps classic BPF wants, and appends the two exits.
fn assemble(steps: &[Step]) -> Vec<Instruction> {
    let instructions: Vec<&Step> = steps
        .iter()
        .filter(|s| !matches!(s, Step::Label(_)))
        .collect();
    let accept = instructions.len();
    let drop = accept + 1;
    let mut labels = std::collections::HashMap::new();
    let mut index = 0;
    for step in steps {
        match step {
            Step::Label(name) => {
                labels.insert(*name, index);
            }
            _ => index += 1,
        }
    }
    let offset = |from: usize, target: Target| -> u8 {
        let to = match target {
            Target::Next => from + 1,
            Target::Accept => accept,
            Target::Drop => drop,
            Target::Label(name) => labels.get(name).copied().unwrap_or(drop),
        };
        // Jumps are forward only and fit in a byte for any sensible number of ports; a
        // program that cannot be encoded drops everything rather than accept too much.
        u8::try_from(to - from - 1).unwrap_or(u8::MAX)
    };
    let mut program: Vec<Instruction> = instructions
        .iter()
        .enumerate()
        .filter_map(|(at, step)| match **step {
            Step::Op(code, k) => Some(instruction(code, 0, 0, k)),
            Step::Jump(code, k, yes, no) => {
                Some(instruction(code, offset(at, yes), offset(at, no), k))
            }
            Step::Label(_) => None,
        })
        .collect();
    program.push(instruction(RET_K, 0, 0, WHOLE_FRAME));
    program.push(instruction(RET_K, 0, 0, 0));
    program
}

fn instruction(code: u16, jt: u8, jf: u8, k: u32) -> Instruction {
    libc::sock_filter { code, jt, jf, k }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny interpreter of the opcodes above, to check the program's logic on frames
    /// built by hand (the kernel test in tests/capture.rs checks it for real).
    fn run(program: &[Instruction], frame: &[u8]) -> bool {
        let (mut a, mut x, mut pc) = (0u32, 0u32, 0usize);
        let byte = |at: u32| frame.get(at as usize).copied().map(u32::from);
        let half = |at: u32| Some(byte(at)? << 8 | byte(at + 1)?);
        loop {
            let i = program[pc];
            pc += 1;
            match i.code {
                LD_H_ABS => match half(i.k) {
                    Some(v) => a = v,
                    None => return false,
                },
                LD_B_ABS => match byte(i.k) {
                    Some(v) => a = v,
                    None => return false,
                },
                LD_H_IND => match half(x + i.k) {
                    Some(v) => a = v,
                    None => return false,
                },
                LDX_B_MSH => match byte(i.k) {
                    Some(v) => x = 4 * (v & 0xf),
                    None => return false,
                },
                JEQ_K => pc += usize::from(if a == i.k { i.jt } else { i.jf }),
                JSET_K => pc += usize::from(if a & i.k != 0 { i.jt } else { i.jf }),
                RET_K => return i.k != 0,
                other => panic!("unknown opcode {other:#x}"),
            }
        }
    }

    fn ipv4(protocol: u8, transport: &[u8]) -> Vec<u8> {
        let mut frame = vec![0u8; 12];
        frame.extend([0x08, 0x00]);
        frame.extend([0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, protocol, 0, 0]);
        frame.extend([127, 0, 0, 1, 127, 0, 0, 1]);
        frame.extend(transport);
        frame
    }

    fn ports(src: u16, dst: u16) -> Vec<u8> {
        let mut t = src.to_be_bytes().to_vec();
        t.extend(dst.to_be_bytes());
        t.extend([0u8; 16]);
        t
    }

    #[test]
    fn keeps_our_ports_in_either_direction_and_nothing_else() {
        let program = ports_filter(&[5000, 6000], &[]);
        assert!(run(&program, &ipv4(6, &ports(41000, 5000))));
        assert!(run(&program, &ipv4(6, &ports(5000, 41000))));
        assert!(run(&program, &ipv4(17, &ports(41000, 6000))));
        assert!(!run(&program, &ipv4(6, &ports(41000, 5001))));
        assert!(!run(&program, &ipv4(47, &ports(41000, 5000))));
    }

    #[test]
    fn keeps_the_marker_port_for_udp_only() {
        let program = ports_filter(&[5000], &[7000]);
        assert!(run(&program, &ipv4(17, &ports(7000, 7000))));
        assert!(
            !run(&program, &ipv4(6, &ports(41000, 7000))),
            "TCP on the marker's number"
        );
        assert!(run(&program, &ipv4(6, &ports(41000, 5000))));
    }

    #[test]
    fn keeps_an_icmp_error_only_if_it_quotes_our_port() {
        let program = ports_filter(&[5000], &[]);
        let quoted = ipv4(17, &ports(41000, 5000));
        let mut icmp = vec![3, 3, 0, 0, 0, 0, 0, 0];
        icmp.extend(&quoted[14..]);
        assert!(run(&program, &ipv4(1, &icmp)));
        let other = ipv4(17, &ports(41000, 5999));
        let mut icmp = vec![3, 3, 0, 0, 0, 0, 0, 0];
        icmp.extend(&other[14..]);
        assert!(!run(&program, &ipv4(1, &icmp)));
    }

    #[test]
    fn keeps_ipv6_tcp_on_our_port() {
        let program = ports_filter(&[5000], &[]);
        let mut frame = vec![0u8; 12];
        frame.extend([0x86, 0xdd]);
        let mut ip = vec![0x60, 0, 0, 0, 0, 20, 6, 64];
        ip.extend([0u8; 32]);
        frame.extend(ip);
        frame.extend(ports(5000, 41000));
        assert!(run(&program, &frame));
        frame[14 + 40] = 0x99;
        assert!(!run(&program, &frame));
    }
}
