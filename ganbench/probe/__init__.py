"""The DCGAN paper's representation probe: discriminator features and a linear L2-SVM."""
