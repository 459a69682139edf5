"""What sits on the network's features: metrics, the novelty check, morphology heads and lab profiles."""
